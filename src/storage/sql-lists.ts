// Building SQL for many rows or values at once, in the shared subset both engines run: one round
// trip per batch rather than per row (PostgreSQL pays one for each), and few distinct SQL texts.

/** "?, ?, ?" */
export const placeholders = (n: number): string => Array<string>(n).fill("?").join(", ");

/** "(?, ?), (?, ?)": `rows` rows of `width` values, for a multi-row INSERT. */
export const valueRows = (rows: number, width: number): string => Array<string>(rows).fill(`(${placeholders(width)})`).join(", ");

/**
 * Splits rows for multi-row INSERTs of power-of-two sizes up to `max`: one round trip per batch
 * rather than per row (PostgreSQL pays one for each), and few distinct SQL texts to prepare.
 */
export function* insertBatches<T>(rows: readonly T[], max = 256): Generator<T[]> {
  for (let i = 0; i < rows.length; ) {
    let size = max;
    while (size > rows.length - i) size >>= 1;
    yield rows.slice(i, i + size);
    i += size;
  }
}

/**
 * Splits values for `IN (...)` lists of at most `max`, each padded to a power of two by repeating its
 * last value (harmless in IN), so that few distinct SQL texts are prepared.
 */
export function* inLists<T>(values: readonly T[], max = 512): Generator<T[]> {
  for (let i = 0; i < values.length; i += max) {
    const list = values.slice(i, i + max);
    let size = 1;
    while (size < list.length) size <<= 1;
    while (list.length < size) list.push(list[list.length - 1]);
    yield list;
  }
}
