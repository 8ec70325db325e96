"""`scratchlm generate MODEL PROMPT`: one continuation of a prompt, streamed or as JSON.

The prompt is continued as it is (write `User: ... Assistant:` yourself for a chat model); `-`
reads it from standard input (UTF-8). A prompt that is not valid Unicode (undecodable bytes) is an
error, like an empty or over-long one. `--json` prints `{"prompt", "completion", "tokens"}` on one
line.
"""

import json
import sys
from pathlib import Path


def add_sampling_options(p, beam=False) -> None:
    """The decoding options `generate` and `chat` share; `sampling_from_args` reads them."""
    p.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0 = greedy, always the most likely token (default); higher = more varied",
    )
    p.add_argument("--top-k", type=int, help="sample only among the K most likely tokens")
    p.add_argument(
        "--top-p", type=float, help="sample among the most likely tokens reaching probability P"
    )
    p.add_argument("--max-tokens", type=int, default=64, help="longest answer (default 64 tokens)")
    p.add_argument("--seed", type=int, help="makes sampling reproducible")
    if beam:
        p.add_argument("--beam", type=int, default=1, help="beam search with this width")


def sampling_from_args(args):
    """The `Sampling` the options of `add_sampling_options` describe (checked: InputError)."""
    from ..sampling import Sampling

    return Sampling(
        max_new_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        beam=getattr(args, "beam", 1),
        seed=args.seed,
    )


def register(sub):
    p = sub.add_parser("generate", help="continue a prompt once (text or --json)")
    p.add_argument("model", type=Path, help="model file (.safetensors or .json)")
    p.add_argument("prompt", help="the text to continue; - reads standard input")
    add_sampling_options(p, beam=True)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..chat import MAX_PROMPT_CHARS, TextStream
    from ..checks import check_text
    from ..errors import InputError
    from ..fileio import decode_utf8
    from ..generate import generate_batch, generate_stream
    from ..model import load_model

    sampling = sampling_from_args(args)
    if args.prompt == "-":
        prompt = decode_utf8(Path("<standard input>"), sys.stdin.buffer.read())
    else:
        prompt = check_text(args.prompt, "the prompt")  # undecodable argv bytes: lone surrogates
    if not prompt.strip():
        raise InputError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(
            f"the prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}"
        )
    model = load_model(args.model)
    tok = model.tokenizer
    if tok is None:
        raise InputError(f"{args.model} has no tokenizer, so it cannot read or write text")
    ids = tok.encode(prompt)
    if args.json or sampling.beam > 1:
        tokens = generate_batch(model, [ids], sampling)[0]
        completion = tok.decode(tokens)
        if args.json:
            out = {"prompt": prompt, "completion": completion, "tokens": len(tokens)}
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
