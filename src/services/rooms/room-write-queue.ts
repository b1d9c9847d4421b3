// One write queue per room: every change to a room's DAG (build, authorize, persist) runs as one
// task, tasks of the same room strictly one after another, tasks of different rooms side by side.
// Without it two sends could both read the same forward extremities and fork the room for nothing,
// or interleave their persists across an await in state resolution.

export class RoomWriteQueue {
  private readonly tails = new Map<string, Promise<unknown>>();
  /** Per room, the settling of the task running now. */
  private readonly active = new Map<string, Promise<void>>();
  /** Tasks queued or running, per room and in all (read by the metrics at scrape time). */
  private readonly depths = new Map<string, number>();
  private queued = 0;

  /** Runs task after every earlier task of the same room has settled; resolves with its result. */
  run<T>(roomId: string, task: () => T | Promise<T>): Promise<T> {
    const previous = this.tails.get(roomId) ?? Promise.resolve();
    const start = () => {
      this.active.set(roomId, tail);
      return task();
    };
    const result = previous.then(start, start);
    // The tail never rejects, so one failed task does not poison the room's queue.
    const tail: Promise<void> = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(roomId, tail);
    this.queued++;
    this.depths.set(roomId, (this.depths.get(roomId) ?? 0) + 1);
    void tail.then(() => {
      if (this.tails.get(roomId) === tail) this.tails.delete(roomId);
      if (this.active.get(roomId) === tail) this.active.delete(roomId);
      this.queued--;
      const depth = this.depths.get(roomId)! - 1;
      if (depth === 0) this.depths.delete(roomId);
      else this.depths.set(roomId, depth);
    });
    return result;
  }

  /** Settles when the room's task running now (if any) has; undefined when none runs. */
  running(roomId: string): Promise<void> | undefined {
    return this.active.get(roomId);
  }

  /** Rooms with work queued or running (for shutdown and tests). */
  get busyRooms(): number {
    return this.tails.size;
  }

  /** Tasks queued or running, in all rooms. */
  get queuedTasks(): number {
    return this.queued;
  }

  /** The most tasks queued or running for one room (O(busy rooms): for metrics scrapes, not hot paths). */
  deepestQueue(): number {
    let deepest = 0;
    for (const depth of this.depths.values()) if (depth > deepest) deepest = depth;
    return deepest;
  }

  /** Waits until every queued task has settled. */
  async drain(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
