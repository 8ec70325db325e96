"""`scratchlm generate MODEL PROMPT`: one continuation of a prompt, streamed or as JSON.

The prompt is continued as it is (write `User: ... Assistant:` yourself for a chat model); `-`
reads it from standard input (UTF-8). A prompt that is not valid Unicode (undecodable bytes) is an
error, like an empty or over-long one. `--json` prints `{"prompt", "completion", "tokens",
"confidence"}` on one line. With `--min-confidence P` a continuation whose confidence is below P
(confidence.py) is replaced by "I don't know" (and `--json` adds `"withheld": true`); it is then
judged whole, not streamed.
"""

import json
import sys
from pathlib import Path


def add_sampling_options(p, beam=False, defaults=None, only=None) -> None:
    """The decoding options `generate` and `chat` share, one per `Sampling` setting (its name,
    help and default; `defaults` changes some; beam search only where `beam`; `only`: these
    settings alone); `sampling_from_args` reads them."""
    from ..sampling import parse_setting, setting_name, settings

    defaults = defaults or {}
    for f in settings():
        if (f.name == "beam" and not beam) or (only is not None and f.name not in only):
            continue
        default = defaults.get(f.name, f.default)
        shown = "off" if default is None else default
        meta = f.metadata
        p.add_argument(
            "--" + setting_name(f).replace("_", "-"),
            dest=f.name,
            type=lambda text, f=f: parse_setting(f, text),
            default=default,
            metavar=(meta["metavar"] or "N") + ("|off" if f.default is None else ""),
            help=f"{meta['help']} (default: {shown})",
        )


def sampling_from_args(args):
    """The `Sampling` the options of `add_sampling_options` describe (checked: InputError)."""
    from ..sampling import Sampling, settings

    return Sampling(**{f.name: getattr(args, f.name) for f in settings() if hasattr(args, f.name)})


def register(sub):
    p = sub.add_parser("generate", help="continue a prompt once (text or --json)")
    p.add_argument("model", type=Path, help="model file (.safetensors or .json)")
    p.add_argument("prompt", help="the text to continue; - reads standard input")
    add_sampling_options(p, beam=True)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..confidence import DONT_KNOW, answer_logprobs, confidence
    from ..fileio import decode_utf8
    from ..generate import generate_batch, generate_stream
    from ..model import load_model
    from ..prompts import TextStream, check_prompt_text, fit, require_tokenizer

    sampling = sampling_from_args(args)
    if args.prompt == "-":
        prompt = decode_utf8(Path("<standard input>"), sys.stdin.buffer.read())
    else:
        prompt = args.prompt  # undecodable argv bytes are lone surrogates: refused as not Unicode
    check_prompt_text(prompt)
    model = load_model(args.model)
    tok = require_tokenizer(model, str(args.model))
    ids = fit(tok.encode(prompt), model.config.max_seq_len, sampling.max_new_tokens)
    if args.json or sampling.beam > 1 or sampling.min_confidence is not None:
        tokens = generate_batch(model, [ids], sampling)[0]
        ended = len(tokens) < sampling.max_new_tokens
        sure = confidence(answer_logprobs(model, [ids], [tokens], [ended])[0])
        withheld = sampling.min_confidence is not None and sure < sampling.min_confidence
        completion = DONT_KNOW if withheld else tok.decode(tokens)
        if args.json:
            out = {"prompt": prompt, "completion": completion, "tokens": len(tokens)}
            out["confidence"] = round(sure, 6)
            if sampling.min_confidence is not None:
                out["withheld"] = withheld
            print(json.dumps(out, ensure_ascii=False))
        else:
            print(completion)
        return 0
    text = TextStream(tok)
    for token in generate_stream(model, ids, sampling):
        sys.stdout.write(text.push(token))
        sys.stdout.flush()
    print(text.flush())
    return 0
