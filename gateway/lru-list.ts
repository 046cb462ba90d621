/**
 * A doubly linked list through its items (each holds its own `prev` and `next`), least recently
 * used first: adding, removing, or moving an item to the end is a few pointer writes, where a
 * Map's delete and set hash the key twice. An item is in at most one list at a time.
 */
export class LruList<T extends { prev: T | null; next: T | null }> {
  head: T | null = null;
  tail: T | null = null;
  size = 0;

  /** Adds `item` at the end (most recently used). */
  push(item: T): void {
    item.prev = this.tail;
    item.next = null;
    if (this.tail === null) this.head = item;
    else this.tail.next = item;
    this.tail = item;
    this.size++;
  }

  remove(item: T): void {
    if (item.prev === null) this.head = item.next;
    else item.prev.next = item.next;
    if (item.next === null) this.tail = item.prev;
    else item.next.prev = item.prev;
    item.prev = null;
    item.next = null;
    this.size--;
  }

  /** Moves `item` to the end (most recently used). */
  touch(item: T): void {
    if (item === this.tail) return;
    this.remove(item);
    this.push(item);
  }

  /** Puts `item` where `old` is, and takes `old` out. */
  replace(old: T, item: T): void {
    item.prev = old.prev;
    item.next = old.next;
    if (old.prev === null) this.head = item;
    else old.prev.next = item;
    if (old.next === null) this.tail = item;
    else old.next.prev = item;
    old.prev = null;
    old.next = null;
  }

  clear(): void {
    this.head = null;
    this.tail = null;
    this.size = 0;
  }
}
