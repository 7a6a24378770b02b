/// <reference lib="dom" />
/** Reads a podcast script aloud with the browser's speech synthesis, one voice per host. */

export interface Turn {
  speaker: string;
  text: string;
}

function voices(): Promise<SpeechSynthesisVoice[]> {
  const now = speechSynthesis.getVoices();
  if (now.length) return Promise.resolve(now);
  // Chrome loads voices asynchronously; wait briefly for them.
  return new Promise((resolve) => {
    const done = () => resolve(speechSynthesis.getVoices());
    speechSynthesis.addEventListener("voiceschanged", done, { once: true });
    setTimeout(done, 1500);
  });
}

/** Two different voices for two hosts, preferring the page's language; pitch tells them apart if only one exists. */
async function castVoices(): Promise<{ voice?: SpeechSynthesisVoice; pitch: number }[]> {
  const all = await voices();
  const lang = (document.documentElement.lang || "en").toLowerCase();
  const local = all.filter((v) => v.lang.toLowerCase().startsWith(lang));
  const pool = local.length ? local : all;
  const first = pool.find((v) => v.default) ?? pool[0];
  const second = pool.find((v) => v !== first && v.name !== first?.name);
  return [
    { voice: first, pitch: second ? 1 : 0.85 },
    { voice: second ?? first, pitch: second ? 1 : 1.2 },
  ];
}

/** Splits long turns: some engines stop speaking a single utterance after ~15 s. */
function pieces(text: string): string[] {
  const sentences = text.match(/[^.!?]+[.!?]*\s*/g) ?? [text];
  const out: string[] = [];
  let buf = "";
  for (const s of sentences) {
    if ((buf + s).length > 220 && buf) {
      out.push(buf);
      buf = "";
    }
    buf += s;
  }
  if (buf.trim()) out.push(buf);
  return out;
}

/** True when this browser can speak. */
export function canSpeak(): boolean {
  return typeof speechSynthesis !== "undefined" && typeof SpeechSynthesisUtterance !== "undefined";
}

/** Plays turns in order; `onTurn` is told which turn is being read (-1 when it stops). */
export class PodcastSpeaker {
  private index = 0;
  private playing = false;
  private generation = 0;

  constructor(private turns: Turn[], private hosts: string[], public onTurn: (i: number) => void) {}

  get isPlaying(): boolean {
    return this.playing;
  }

  /** Starts (or resumes) from the current turn. */
  async play(): Promise<void> {
    if (this.playing) return;
    if (speechSynthesis.paused && speechSynthesis.speaking) {
      this.playing = true;
      speechSynthesis.resume();
      return;
    }
    this.playing = true;
    const gen = ++this.generation;
    const cast = await castVoices();
    while (this.playing && gen === this.generation && this.index < this.turns.length) {
      const turn = this.turns[this.index];
      this.onTurn(this.index);
      const host = Math.max(0, this.hosts.indexOf(turn.speaker)) % 2;
      for (const piece of pieces(turn.text)) {
        if (!this.playing || gen !== this.generation) return;
        await new Promise<void>((resolve) => {
          const u = new SpeechSynthesisUtterance(piece);
          if (cast[host].voice) u.voice = cast[host].voice!;
          u.pitch = cast[host].pitch;
          u.lang = cast[host].voice?.lang ?? document.documentElement.lang ?? "en";
          u.onend = () => resolve();
          u.onerror = () => resolve();
          speechSynthesis.speak(u);
        });
      }
      if (gen === this.generation && this.playing) this.index++;
    }
    if (gen === this.generation) {
      this.playing = false;
      if (this.index >= this.turns.length) {
        this.index = 0;
        this.onTurn(-1);
      }
    }
  }

  /** Pauses where it is. */
  pause(): void {
    this.playing = false;
    speechSynthesis.pause();
  }

  /** Stops and goes back to the start. */
  stop(): void {
    this.playing = false;
    this.generation++;
    this.index = 0;
    speechSynthesis.cancel();
    this.onTurn(-1);
  }
}
