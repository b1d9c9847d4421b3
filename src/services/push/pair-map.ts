// Values per (user, room), stored per room then user: a lookup builds no key string (a message to
// a room of N local members looks up N pairs, and /sync one per room it shows).

export class PairMap<V> {
  private readonly rooms = new Map<string, Map<string, V>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(userId: string, roomId: string): V | undefined {
    return this.rooms.get(roomId)?.get(userId);
  }

  has(userId: string, roomId: string): boolean {
    return this.rooms.get(roomId)?.has(userId) ?? false;
  }

  set(userId: string, roomId: string, value: V): void {
    let users = this.rooms.get(roomId);
    if (users === undefined) this.rooms.set(roomId, (users = new Map()));
    const before = users.size;
    users.set(userId, value);
    this.count += users.size - before;
  }

  /** Whether the pair was there. */
  delete(userId: string, roomId: string): boolean {
    const users = this.rooms.get(roomId);
    if (users === undefined || !users.delete(userId)) return false;
    this.count--;
    if (users.size === 0) this.rooms.delete(roomId);
    return true;
  }

  clear(): void {
    this.rooms.clear();
    this.count = 0;
  }
}
