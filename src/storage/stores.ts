// Per-domain store interfaces: what services see of storage. A PostgreSQL backend implements these
// beside the SQLite one without touching a service.

/** Small facts about this server that must outlive a restart (the server name it was created with, ...). */
export interface ServerMetaStore {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}
