import assert from "node:assert/strict";
import { countTokens as countWithLibrary } from "gpt-tokenizer/encoding/cl100k_base";
import { countTokens, countTokensInUtf8, tokenCounterState } from "../../lib/tokens.ts";

const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };
const library = (text: string) => countWithLibrary(text, PLAIN_TEXT);

/** A small deterministic generator (the same cases every run). */
function rng(seed: number) {
  return () => (seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x80000000;
}

Deno.test("countTokens counts with cl100k: known counts, special tokens as plain text", () => {
  assert.equal(countTokens(""), 0);
  assert.equal(countTokens("hello world"), 2);
  assert.equal(countTokens("<|endoftext|>"), library("<|endoftext|>"));
  assert.ok(countTokens("<|endoftext|>") > 1);
});

Deno.test("countTokens equals gpt-tokenizer on every source and doc file of this repository", async () => {
  let files = 0;
  let nonAscii = 0;
  for (const dir of ["lib", "lib/llm", "routes", "tests", "tests/lib", "bench", "docs", "static/src"]) {
    for await (const entry of Deno.readDir(new URL(`../../${dir}/`, import.meta.url))) {
      if (!entry.isFile || !/\.(ts|md|css|html|json)$/.test(entry.name)) continue;
      const text = await Deno.readTextFile(new URL(`../../${dir}/${entry.name}`, import.meta.url));
      assert.equal(countTokens(text), library(text), `${dir}/${entry.name}`);
      files++;
      if (/[^ -~\s]/.test(text)) nonAscii++;
    }
  }
  assert.ok(files > 50 && nonAscii > 5, `${files} files, ${nonAscii} with non-ASCII text`);
});

Deno.test("countTokensInUtf8 counts bytes as countTokens counts their text, a leading BOM dropped as decoding drops it", async () => {
  const utf8 = new TextEncoder();
  const texts = [
    await Deno.readTextFile(new URL("../../lib/tokens.ts", import.meta.url)),
    await Deno.readTextFile(new URL("../../README.md", import.meta.url)),
    "naïve café — 日本語のテキスト 🦕 ",
    "",
    "\ufeff",
  ];
  for (const text of texts) {
    for (const bytes of [utf8.encode(text), new Uint8Array([0xef, 0xbb, 0xbf, ...utf8.encode(text)])]) {
      const decoded = new TextDecoder().decode(bytes);
      assert.equal(countTokensInUtf8(bytes), countTokens(decoded), JSON.stringify(decoded.slice(0, 20)));
    }
  }
  assert.equal(countTokensInUtf8(utf8.encode("\ufeffhello world")), 2);
  // a byte order mark after the start is text, and counted
  assert.ok(countTokensInUtf8(utf8.encode("a\ufeff")) > countTokens("a"));
});

Deno.test("countTokens equals gpt-tokenizer on generated text full of the split pattern's edge cases", () => {
  const parts = [
    "a",
    "Z",
    "word",
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\n\n",
    "\v",
    "\f",
    "'",
    "'s",
    "'S",
    "'ll",
    "'LL",
    "'ve",
    "'Re",
    "'d",
    "'m",
    "'t",
    "'x",
    "1",
    "12",
    "1234",
    "(",
    "{}",
    "=>",
    "...",
    "-",
    "_",
    "\x00",
    "\x7f",
    "é",
    "—",
    "\u00a0",
    "\u2028",
    "😀",
    "日本",
    "𝟘𝟙", // digits past U+FFFF
    "𐐀𐐨", // letters past U+FFFF
    "<|endoftext|>",
  ];
  const random = rng(42);
  for (let i = 0; i < 30_000; i++) {
    let text = "";
    for (let n = 1 + Math.floor(random() * 14); n > 0; n--) {
      text += parts[Math.floor(random() * parts.length)];
    }
    assert.equal(countTokens(text), library(text), JSON.stringify(text));
  }
});

Deno.test("countTokens equals gpt-tokenizer on long pieces: CJK sentences, runs of symbols and spaces", () => {
  const random = rng(7);
  const run = (chars: string, n: number) =>
    Array.from({ length: n }, () => chars[Math.floor(random() * chars.length)]).join("");
  for (const n of [10, 100, 1000, 5000]) {
    for (
      const text of [
        run(
          "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴奇切",
          n,
        ),
      ]
    ) {
      assert.equal(countTokens(text), library(text));
    }
    for (const text of [run("!#$%&*+-./:;<=>?@[]^`{|}~", n), run(" \t\n", n), run("0123456789", n)]) {
      assert.equal(countTokens(text), library(text));
    }
  }
});

Deno.test("countTokens counts a 1 MB run of one letter, symbol or space, window by window", () => {
  // a piece of 2^20 code units is counted in windows of 16,384 (the merge loop was quadratic:
  // seconds for 100 KB, hours for 1 MB); "aaaaaaaa" is one token, so the run is 2^20 / 8 tokens
  assert.equal(countTokens("a".repeat(2 ** 20)), 2 ** 17);
  for (const unit of ["=", " ", "語", "😀"]) {
    const window = unit.repeat(16_384 / unit.length);
    assert.equal(countTokens(unit.repeat(2 ** 20 / unit.length)), 64 * countTokens(window), unit);
  }
});

Deno.test("countTokens keeps its table of long pieces to 512 KiB, whatever the pieces, and stays exact", () => {
  // 2,500 distinct pieces of 256 bytes (a space and 255 random letters) are 640 KiB
  const next = rng(7);
  const word = () =>
    Array.from({ length: 255 }, () => String.fromCharCode(97 + Math.floor(next() * 26))).join("");
  let most = 0;
  for (let i = 0; i < 2_500; i++) {
    const piece = ` ${word()}`;
    const count = countTokens(piece);
    if (i % 50 === 0) assert.equal(count, library(piece));
    most = Math.max(most, tokenCounterState().pieceBytes);
  }
  assert.ok(most >= 500 * 1024 && most < 512 * 1024 + 256, `the table held up to ${most} code units`);
});

Deno.test("countTokens starts its table of short pieces again when full, and stays exact", () => {
  // 100,000 distinct pieces of 2 to 8 bytes: the table starts again past 65,536
  const next = rng(5);
  const pieces = Array.from({ length: 100_000 }, (_, i) => ` ${i.toString(36)}${"qxz"[i % 3]}`.slice(0, 8));
  for (const [i, piece] of pieces.entries()) {
    const count = countTokens(piece);
    if (i % 97 === 0 || next() < 0.001) assert.equal(count, library(piece), JSON.stringify(piece));
  }
  for (const piece of pieces.slice(0, 2_000)) assert.equal(countTokens(piece), library(piece), piece);
});

Deno.test("countTokens keeps its memory bounded: megabyte texts, long pieces, runs and new pieces reuse it", () => {
  const next = rng(11);
  const letters = (n: number) =>
    Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(next() * 26)));
  let most = 0;
  for (let i = 0; i < 3; i++) {
    countTokens(letters(2 ** 20).join("")); // one run: 64 windows of the heap-based count
    most = Math.max(most, tokenCounterState().memoryBytes);
    countTokens(letters(2 ** 20).map((c, j) => (j % 256 === 0 ? " " : c)).join("")); // 4,096 new pieces
    most = Math.max(most, tokenCounterState().memoryBytes);
  }
  assert.ok(most < 24 * 2 ** 20, `${(most / 2 ** 20).toFixed(1)} MB of WebAssembly memory`);
});
