"""Evaluation on chat example sets: the exact-answer score and the mean loss.

An example `User: <q> Assistant: <a> </s>` is split at "Assistant:"; the model answers the prompt
greedily, and the answer counts when its detokenized text equals the reference's (both passed through
the same tokenizer, so spacing conventions cannot make a difference).
"""

from .data import ExampleBatcher
from .train import mean_loss

ASSISTANT = "Assistant:"


def chat_prompt(question: str) -> str:
    return f"User: {question} {ASSISTANT}"


def split_chat_example(text: str) -> tuple[str, str]:
    """-> (prompt ending in "Assistant:", reference answer without the end marker)."""
    k = text.find(ASSISTANT)
    if k < 0:
        return text, ""
    answer = text[k + len(ASSISTANT) :].replace("</s>", "").strip()
    return text[: k + len(ASSISTANT)], answer


def answer(model, prompt: str, max_new_tokens: int = 40) -> str:
    """The model's greedy answer to `prompt` (a text ending in "Assistant:")."""
    tok = model.tokenizer
    ids = tok.encode(prompt)[-(model.config.max_seq_len - 1) :]
    return tok.decode(model.generate(ids, max_new_tokens=max_new_tokens)).strip()


def exact_answer_score(model, examples: list[str]) -> tuple[float, list[tuple[str, str, str]]]:
    """-> (fraction answered exactly, the misses as (prompt, expected, got))."""
    tok, misses = model.tokenizer, []
    for text in examples:
        prompt, reference = split_chat_example(text)
        expected = tok.decode(tok.encode(reference)).strip()
        got = answer(model, prompt)
        if got != expected:
            misses.append((prompt, expected, got))
    return 1.0 - len(misses) / len(examples), misses


def examples_loss(model, examples: list[str], batch_size: int = 32) -> float:
    tok = model.tokenizer
    batcher = ExampleBatcher(
        [tok.encode(t) for t in examples], batch_size, model.config.max_seq_len, pad_id=tok.pad_id
    )
    return mean_loss(model, batcher.batches(0))
