// Walks of the graph formed by `auth_events` (v2-state-res.md "Auth chain"): the auth difference,
// the conflicted state subgraph (v12.md) and the auth chains of power events within the full
// conflicted set. Every walk is iterative (auth chains run to the start of the room, far deeper
// than the call stack) and visits each event once, so no auth chain is ever copied per event.

import type { EventCache } from "./event-cache";
import type { Yielder } from "./yielder";

/** The part of the auth DAG reachable from some start events, with events numbered. */
export interface AuthDag {
  readonly ids: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  /** Node -> its auth events. An event the store lacks is a node without edges. */
  readonly authEdges: readonly (readonly number[])[];
  /** Every node after all of its auth events (a DFS post-order). */
  readonly postOrder: readonly number[];
  readonly starts: readonly number[];
}

/** Depth-first walk from `starts` through `auth_events`, fetching each event once. */
export async function walkAuthDag(
  starts: Iterable<string>,
  events: EventCache,
  yielder: Yielder,
): Promise<AuthDag> {
  const ids: string[] = [];
  const index = new Map<string, number>();
  const authEdges: number[][] = [];
  const expanded: boolean[] = [];
  const cursor: number[] = [];
  const finished: boolean[] = [];
  const onStack: boolean[] = [];
  const postOrder: number[] = [];
  const startNodes: number[] = [];

  const node = (id: string): number => {
    let i = index.get(id);
    if (i === undefined) {
      i = ids.length;
      ids.push(id);
      index.set(id, i);
      authEdges.push([]);
      expanded.push(false);
      cursor.push(0);
      finished.push(false);
      onStack.push(false);
    }
    return i;
  };

  const stack: number[] = [];
  for (const start of starts) {
    const s = node(start);
    startNodes.push(s);
    if (finished[s] || onStack[s]) continue;
    stack.push(s);
    onStack[s] = true;
    while (stack.length > 0) {
      const u = stack[stack.length - 1];
      if (!expanded[u]) {
        expanded[u] = true;
        const event = await events.get(ids[u]);
        if (event) authEdges[u] = [...new Set(event.auth_events)].map(node);
        await yielder.step();
      }
      const edges = authEdges[u];
      if (cursor[u] < edges.length) {
        const a = edges[cursor[u]++];
        // A cycle (only possible with v1/v2 server-chosen ids) is cut instead of looping forever.
        if (!finished[a] && !onStack[a]) {
          onStack[a] = true;
          stack.push(a);
        }
      } else {
        stack.pop();
        onStack[u] = false;
        finished[u] = true;
        postOrder.push(u);
      }
    }
  }
  return { ids, index, authEdges, postOrder, starts: startNodes };
}

/**
 * The auth difference of the state sets (v2-state-res.md "Auth difference"): ∪Cᵢ − ∩Cᵢ, where Cᵢ
 * is the full auth chain of Sᵢ, the union of the auth chains of its events.
 */
export async function authDifference(
  stateSets: readonly (readonly string[])[],
  events: EventCache,
  yielder: Yielder,
): Promise<Set<string>> {
  const k = stateSets.length;
  const authChain = events.authChainLookup;
  if (authChain) {
    // The store answers each full auth chain; count in how many chains each event appears.
    const counts = new Map<string, number>();
    for (const stateSet of stateSets) {
      for (const id of new Set(await authChain(stateSet))) {
        counts.set(id, (counts.get(id) ?? 0) + 1);
        await yielder.step();
      }
    }
    const difference = new Set<string>();
    for (const [id, count] of counts) if (count < k) difference.add(id);
    return difference;
  }

  // One walk of the union of all the chains. Each event carries a bit set of the state sets whose
  // full auth chain contains it, pushed down the DAG from the events citing it: O(events + edges)
  // instead of one auth-chain set per event.
  const dag = await walkAuthDag(stateSets.flat(), events, yielder);
  const words = Math.ceil(k / 32);
  const n = dag.ids.length;
  const inStateSet = new Uint32Array(n * words);
  const inAuthChain = new Uint32Array(n * words);
  stateSets.forEach((stateSet, i) => {
    for (const id of stateSet) inStateSet[dag.index.get(id)! * words + (i >>> 5)] |= 1 << (i & 31);
  });
  // Reverse post-order: every event before its auth events, so each mask is complete when pushed.
  for (let p = dag.postOrder.length - 1; p >= 0; p--) {
    const u = dag.postOrder[p];
    for (const a of dag.authEdges[u]) {
      for (let w = 0; w < words; w++) {
        inAuthChain[a * words + w] |= inAuthChain[u * words + w] | inStateSet[u * words + w];
      }
    }
    await yielder.step();
  }
  const difference = new Set<string>();
  for (let u = 0; u < n; u++) {
    let any = false;
    let all = true;
    for (let w = 0; w < words; w++) {
      const bits = inAuthChain[u * words + w];
      const full = w === words - 1 && k % 32 !== 0 ? (1 << (k % 32)) - 1 : 0xffffffff;
      if (bits !== 0) any = true;
      if (bits >>> 0 !== full >>> 0) all = false;
    }
    if (any && !all) difference.add(dag.ids[u]);
  }
  return difference;
}

/**
 * The conflicted state subgraph (v12.md, MSC4297): every event on an `auth_events` path from one
 * event of the conflicted state set to another, endpoints included. An event is on such a path
 * exactly when it is in the auth chain of a conflicted event (or is one) and a conflicted event is
 * in its own auth chain (or it is one, reached from another).
 */
export async function conflictedStateSubgraph(
  conflictedStateSet: ReadonlySet<string>,
  events: EventCache,
  yielder: Yielder,
): Promise<Set<string>> {
  const dag = await walkAuthDag(conflictedStateSet, events, yielder);
  const n = dag.ids.length;
  const isConflicted = (u: number) => conflictedStateSet.has(dag.ids[u]);
  // reachesConflicted[u]: a conflicted event is in u's auth chain. Post-order: auth events first.
  const reachesConflicted = new Uint8Array(n);
  // inAuthChain[u]: u is in the auth chain of a walked event, i.e. of a conflicted event.
  const inAuthChain = new Uint8Array(n);
  for (const u of dag.postOrder) {
    for (const a of dag.authEdges[u]) {
      inAuthChain[a] = 1;
      if (reachesConflicted[a] || isConflicted(a)) reachesConflicted[u] = 1;
    }
    await yielder.step();
  }
  const subgraph = new Set<string>();
  for (let u = 0; u < n; u++) {
    if (!reachesConflicted[u]) continue;
    // A conflicted event that reaches another is a path's start; any other reaching event was
    // walked from a conflicted event, so it lies in the middle of a path.
    subgraph.add(dag.ids[u]);
  }
  for (let u = 0; u < n; u++) {
    if (inAuthChain[u] && isConflicted(u)) subgraph.add(dag.ids[u]); // a path's end
  }
  return subgraph;
}

/**
 * Step 1's enlargement of the power events (v2-state-res.md "Algorithm"): the events of their auth
 * chains that belong to `within` (the full conflicted set), and for every such event the nearest
 * events of the set in its auth chain. Those edges keep the order of the auth DAG among the
 * selected events even where a path between two of them runs through events outside the set.
 */
export async function authChainsWithin(
  starts: readonly string[],
  within: ReadonlySet<string>,
  events: EventCache,
  yielder: Yielder,
): Promise<Map<string, string[]>> {
  const dag = await walkAuthDag(starts, events, yielder);
  const n = dag.ids.length;
  const selected = new Uint8Array(n);
  for (let u = 0; u < n; u++) if (within.has(dag.ids[u])) selected[u] = 1;
  for (const s of dag.starts) selected[s] = 1;

  const empty: ReadonlySet<number> = new Set();
  // For an unselected event: the nearest selected events in its auth chain. A set is shared with
  // the one auth event it came from when there is just one, so long chains cost no copies.
  const nearest: ReadonlySet<number>[] = new Array(n);
  const preceding = new Map<string, string[]>();
  for (const u of dag.postOrder) {
    let only: ReadonlySet<number> | undefined;
    let union: Set<number> | undefined;
    for (const a of dag.authEdges[u]) {
      const contribution = selected[a] ? new Set([a]) : nearest[a];
      if (contribution.size === 0 || contribution === only) continue;
      if (only === undefined) {
        only = contribution;
      } else {
        union ??= new Set(only);
        for (const x of contribution) union.add(x);
      }
    }
    const result = union ?? only ?? empty;
    if (selected[u]) preceding.set(dag.ids[u], [...result].map((x) => dag.ids[x]));
    else nearest[u] = result;
    await yielder.step();
  }
  return preceding;
}
