/** The length of `text` in UTF-8 bytes, without encoding it (a lone surrogate counts 3, as it is encoded). */
export function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    const pair = c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    n += c < 0x800 ? 1 : 2; // a pair: 4 bytes for its 2 units
    if (pair) i++;
  }
  return n;
}
