/**
 * A growable set of small non-negative integers (node numbers), one bit each, so that "which
 * nodes have this image" costs nodes / 8 bytes per image.
 *
 * @module
 */

/** A set of node numbers kept as bits, with its size counted. */
export class NodeBitset {
  #words = new Uint32Array(4);
  #size = 0;

  /** How many numbers are in the set. */
  get size(): number {
    return this.#size;
  }

  /** Bytes held by the set's storage. */
  get bytes(): number {
    return this.#words.byteLength;
  }

  /** Tells whether `n` is in the set. */
  has(n: number): boolean {
    const word = n >>> 5;
    return word < this.#words.length && (this.#words[word] & (1 << (n & 31))) !== 0;
  }

  /** Adds `n`; returns false when it was already there. */
  add(n: number): boolean {
    const word = n >>> 5;
    if (word >= this.#words.length) {
      const grown = new Uint32Array(Math.max(word + 1, this.#words.length * 2));
      grown.set(this.#words);
      this.#words = grown;
    }
    const bit = 1 << (n & 31);
    if (this.#words[word] & bit) return false;
    this.#words[word] |= bit;
    this.#size++;
    return true;
  }

  /** Removes `n`; returns false when it was not there. */
  delete(n: number): boolean {
    if (!this.has(n)) return false;
    this.#words[n >>> 5] &= ~(1 << (n & 31));
    this.#size--;
    return true;
  }
}
