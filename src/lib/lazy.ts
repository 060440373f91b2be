/**
 * A value made on first use, then kept. Start-up time counts until the first healthy answer, so
 * what only some requests need (prepared statements, say) is built by the first of them instead.
 */
export function lazy<T>(make: () => T): () => T {
  let made = false;
  let value: T;
  return () => {
    if (!made) {
      value = make();
      made = true;
    }
    return value;
  };
}
