/** The index's tokenizer as first written, with regular expressions, and texts to compare it on. */

/** The tokens of `text`: each run of [A-Za-z0-9_], then its parts when it splits into more than one. */
export function regexTokens(text: string): string[] {
  const out: string[] = [];
  for (const word of text.split(/[^A-Za-z0-9_]+/)) {
    if (!word) continue;
    out.push(word);
    if (!/_|.[A-Z]/.test(word)) continue;
    const parts = word.split(/_|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])/);
    if (parts.length > 1) out.push(...parts);
  }
  return out;
}

const PIECES = [
  "a",
  "z",
  "Q",
  "X",
  "0",
  "9",
  "_",
  "__",
  " ",
  "-",
  ".",
  "é",
  "\n",
  "Ab",
  "HTML",
  "aB",
  "日",
  "😀",
];

/** `count` short texts of the pieces above (identifier parts, separators, non-ASCII), the same every run. */
export function* randomTexts(count: number, pieces = PIECES): Generator<string> {
  let seed = 7;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x80000000;
  for (let i = 0; i < count; i++) {
    let text = "";
    for (let n = 1 + Math.floor(random() * 10); n > 0; n--) {
      text += pieces[Math.floor(random() * pieces.length)];
    }
    yield text;
  }
}
