// Short sounds made on the spot with WebAudio (no sound files): a shot, a hit landed, being hit, an
// elimination, being eliminated, the end of a match. Muted with the HUD's button or the M key; remembered.
//
// Browsers start audio only after the player has touched the page, so the AudioContext is made on the first
// key, click or tap (`unlock`). Until then, and while muted, sounds are counted as skipped, never queued.

const MUTE_STORAGE_KEY = "arena.sound";
const MASTER_GAIN = 0.5;

/** One tone: a waveform gliding from `from` to `to` Hz over `seconds`, fading out from `gain`. */
function tone(context, output, { at = 0, type = "sine", from, to = from, seconds, gain }) {
  const start = context.currentTime + at;
  const oscillator = context.createOscillator();
  oscillator.type = type;
  oscillator.frequency.setValueAtTime(from, start);
  if (to !== from) oscillator.frequency.exponentialRampToValueAtTime(to, start + seconds);
  const envelope = context.createGain();
  envelope.gain.setValueAtTime(gain, start);
  envelope.gain.exponentialRampToValueAtTime(0.0001, start + seconds);
  oscillator.connect(envelope).connect(output);
  oscillator.start(start);
  oscillator.stop(start + seconds + 0.02);
}

/** A burst of filtered noise: a thud below `cutoff` Hz. */
function noise(context, output, { seconds, gain, cutoff }) {
  const length = Math.ceil(context.sampleRate * seconds);
  const buffer = context.createBuffer(1, length, context.sampleRate);
  const samples = buffer.getChannelData(0);
  for (let i = 0; i < length; i += 1) samples[i] = (Math.random() * 2 - 1) * (1 - i / length);
  const source = context.createBufferSource();
  source.buffer = buffer;
  const filter = context.createBiquadFilter();
  filter.type = "lowpass";
  filter.frequency.value = cutoff;
  const envelope = context.createGain();
  envelope.gain.value = gain;
  source.connect(filter).connect(envelope).connect(output);
  source.start();
}

/** Each sound by name: what it plays. */
const SOUNDS = {
  shot: (c, out) => tone(c, out, { type: "square", from: 880, to: 220, seconds: 0.08, gain: 0.06 }),
  hit: (c, out) => tone(c, out, { type: "triangle", from: 1400, to: 1800, seconds: 0.06, gain: 0.2 }),
  hurt: (c, out) => {
    noise(c, out, { seconds: 0.14, gain: 0.5, cutoff: 700 });
    tone(c, out, { from: 140, to: 70, seconds: 0.14, gain: 0.25 });
  },
  kill: (c, out) => {
    tone(c, out, { type: "triangle", from: 660, seconds: 0.09, gain: 0.18 });
    tone(c, out, { at: 0.09, type: "triangle", from: 990, seconds: 0.16, gain: 0.18 });
  },
  death: (c, out) => tone(c, out, { type: "sawtooth", from: 440, to: 90, seconds: 0.45, gain: 0.08 }),
  win: (c, out) => {
    for (const [index, frequency] of [523, 659, 784, 1047].entries()) {
      tone(c, out, { at: index * 0.1, type: "triangle", from: frequency, seconds: 0.22, gain: 0.15 });
    }
  },
  end: (c, out) => {
    for (const [index, frequency] of [523, 440, 349].entries()) {
      tone(c, out, { at: index * 0.14, type: "triangle", from: frequency, seconds: 0.25, gain: 0.14 });
    }
  },
};

export class Sounds {
  muted = localStorage.getItem(MUTE_STORAGE_KEY) === "off";
  /** How many of each sound really started, and how many were skipped (muted, or audio not started yet). */
  played = {};
  skipped = 0;
  #context = null;
  #output = null;
  #onChange;

  constructor({ onChange = () => {} } = {}) {
    this.#onChange = onChange;
  }

  /** Start audio (call from a key, click or tap: browsers allow it then). */
  unlock() {
    if (typeof AudioContext === "undefined") return;
    if (!this.#context) {
      this.#context = new AudioContext();
      this.#output = this.#context.createGain();
      this.#output.gain.value = MASTER_GAIN;
      this.#output.connect(this.#context.destination);
    }
    if (this.#context.state === "suspended") this.#context.resume().catch(() => {});
  }

  /** "running" once audio plays; "suspended" before the first touch; "none" without WebAudio. */
  get state() {
    return this.#context?.state ?? (typeof AudioContext === "undefined" ? "none" : "suspended");
  }

  setMuted(muted) {
    this.muted = muted;
    localStorage.setItem(MUTE_STORAGE_KEY, muted ? "off" : "on");
    this.#onChange();
  }

  play(name) {
    const sound = SOUNDS[name];
    if (!sound) return;
    if (this.muted || this.#context?.state !== "running") {
      this.skipped += 1;
      return;
    }
    sound(this.#context, this.#output);
    this.played[name] = (this.played[name] ?? 0) + 1;
  }
}
