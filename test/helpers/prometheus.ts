// A strict reader of Prometheus' text exposition format (version 0.0.4), for tests of /metrics: it
// throws on any line that is not a HELP, a TYPE, an empty line or a well-formed sample of a declared
// family, and checks each histogram's buckets against its count.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly samples: readonly Sample[];
  /** Family name -> counter | gauge | histogram | summary | untyped. */
  readonly types: ReadonlyMap<string, string>;
  readonly help: ReadonlyMap<string, string>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`not a sample value: ${JSON.stringify(text)} in ${JSON.stringify(line)}`);
  return Number(text);
}

/** `{a="x",b="y\"z"}` from position `at` (at the `{`): the labels and the position after `}`. */
function parseLabels(line: string, at: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1;
  for (;;) {
    if (line[i] === "}") return { labels, end: i + 1 };
    const eq = line.indexOf("=", i);
    if (eq === -1) throw new Error(`bad labels in ${JSON.stringify(line)}`);
    const name = line.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`bad label name ${JSON.stringify(name)} in ${JSON.stringify(line)}`);
    if (name in labels) throw new Error(`label ${name} twice in ${JSON.stringify(line)}`);
    if (line[eq + 1] !== '"') throw new Error(`label value not quoted in ${JSON.stringify(line)}`);
    let value = "";
    let j = eq + 2;
    for (; j < line.length && line[j] !== '"'; j++) {
      if (line[j] === "\\") {
        const next = line[++j];
        if (next === "n") value += "\n";
        else if (next === "\\" || next === '"') value += next;
        else throw new Error(`bad escape in ${JSON.stringify(line)}`);
      } else value += line[j];
    }
    if (j >= line.length) throw new Error(`unterminated label value in ${JSON.stringify(line)}`);
    labels[name] = value;
    i = j + 1;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") throw new Error(`expected , or } in ${JSON.stringify(line)}`);
  }
}

/** The family a sample belongs to, given the declared types. */
function familyOf(name: string, types: ReadonlyMap<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const type = types.get(base);
    if (type === "histogram" || (type === "summary" && suffix !== "_bucket")) return base;
  }
  return undefined;
}

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const seen = new Set<string>();
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) {
        if (line.startsWith("# HELP") || line.startsWith("# TYPE")) throw new Error(`bad comment line ${JSON.stringify(line)}`);
        continue; // other comments are allowed
      }
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in ${JSON.stringify(line)}`);
      const map = kind === "HELP" ? help : types;
      if (map.has(name)) throw new Error(`${kind} of ${name} twice`);
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`unknown type in ${JSON.stringify(line)}`);
        if ([...seen].some((s) => familyOf(s, new Map([[name, rest]])) === name)) throw new Error(`TYPE of ${name} after its samples`);
      }
      map.set(name, rest);
      continue;
    }
    const nameEnd = line.search(/[{ ]/);
    if (nameEnd <= 0) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const name = line.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in ${JSON.stringify(line)}`);
    let labels: Record<string, string> = {};
    let rest = nameEnd;
    if (line[nameEnd] === "{") ({ labels, end: rest } = parseLabels(line, nameEnd));
    if (line[rest] !== " ") throw new Error(`expected a space before the value in ${JSON.stringify(line)}`);
    const parts = line.slice(rest + 1).split(" ");
    if (parts.length > 2 || (parts.length === 2 && !/^-?\d+$/.test(parts[1]!))) throw new Error(`bad value or timestamp in ${JSON.stringify(line)}`);
    const value = parseValue(parts[0]!, line);
    const family = familyOf(name, types);
    if (family === undefined) throw new Error(`sample ${name} has no TYPE`);
    if (name.endsWith("_bucket") && labels.le === undefined) throw new Error(`bucket without le in ${JSON.stringify(line)}`);
    seen.add(name);
    samples.push({ name, labels, value });
  }
  checkHistograms(samples, types);
  return { samples, types, help };
}

/** Buckets rise with le, and the +Inf bucket equals _count, for every label set of every histogram. */
function checkHistograms(samples: readonly Sample[], types: ReadonlyMap<string, string>): void {
  for (const [family, type] of types) {
    if (type !== "histogram") continue;
    const series = new Map<string, { le: number; value: number }[]>();
    const key = (labels: Readonly<Record<string, string>>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== "le").sort());
    for (const s of samples) if (s.name === `${family}_bucket`) {
      const k = key(s.labels);
      series.set(k, [...(series.get(k) ?? []), { le: parseValue(s.labels.le!, s.labels.le!), value: s.value }]);
    }
    for (const [k, buckets] of series) {
      buckets.sort((a, b) => a.le - b.le);
      for (let i = 1; i < buckets.length; i++) if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${family} buckets fall at le=${buckets[i]!.le} (${k})`);
      const count = samples.find((s) => s.name === `${family}_count` && key(s.labels) === k);
      if (buckets.at(-1)?.le !== Infinity || count === undefined || count.value !== buckets.at(-1)!.value) throw new Error(`${family}: the +Inf bucket must equal _count (${k})`);
    }
  }
}

/** The value of the one sample with this name and exactly these labels (0 when absent: a series not yet made). */
export function sampleValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  const want = JSON.stringify(Object.entries(labels).sort());
  const matches = exposition.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  if (matches.length > 1) throw new Error(`${matches.length} samples of ${name} ${want}`);
  return matches[0]?.value ?? 0;
}

/** Fetches and parses /metrics (status 200 and the exposition's content type required). */
export async function scrape(metricsUrl: string): Promise<Exposition> {
  const response = await fetch(`${metricsUrl}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  const type = response.headers.get("content-type") ?? "";
  if (!type.startsWith("text/plain") || !type.includes("version=0.0.4")) throw new Error(`/metrics content type ${type}`);
  return parseExposition(await response.text());
}
