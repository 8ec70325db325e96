"""`scratchlm info MODEL`: what a model file holds (it is fully verified on the way)."""

from pathlib import Path


def register(sub):
    p = sub.add_parser(
        "info", help="metadata, configuration, parameter count and digest of a model"
    )
    p.add_argument("model", type=Path)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..model import load_model
    from ..modelfile import read_model_file

    model = load_model(args.model)  # runs every check
    f = read_model_file(args.model)
    cfg = model.config
    mode = (
        f"adaptive (ACT, at most {cfg.max_depth} steps, halt_eps {cfg.halt_eps})"
        if cfg.adaptive_depth
        else f"fixed, {cfg.depth} steps"
    )
    tok = model.tokenizer
    print(f"file: {args.model}")
    for key, value in f.metadata.items():
        print(f"{key}: {value}")
    print(f"parameters: {model.num_parameters:,}")
    print(f"depth: {mode}")
    print(f"tokenizer: {tok.to_json()['type'] if tok else 'none'} ({cfg.vocab_size} tokens)")
    print("config: " + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items()))
    print(f"sha256: {f.sha256}")
    return 0
