// One write queue per room: every change to a room's DAG (build, authorize, persist) runs as one
// task, tasks of the same room strictly one after another, tasks of different rooms side by side.
// Without it two sends could both read the same forward extremities and fork the room for nothing,
// or interleave their persists across an await in state resolution.

export class RoomWriteQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs task after every earlier task of the same room has settled; resolves with its result. */
  run<T>(roomId: string, task: () => T | Promise<T>): Promise<T> {
    const previous = this.tails.get(roomId) ?? Promise.resolve();
    const result = previous.then(task, task);
    // The tail never rejects, so one failed task does not poison the room's queue.
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(roomId, tail);
    void tail.then(() => {
      if (this.tails.get(roomId) === tail) this.tails.delete(roomId);
    });
    return result;
  }

  /** Rooms with work queued or running (for shutdown and tests). */
  get busyRooms(): number {
    return this.tails.size;
  }

  /** Waits until every queued task has settled. */
  async drain(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
