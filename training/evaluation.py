"""What a chat model answers on held-back prompts, and how close those answers are to the reference.

The point of fine-tuning a chatbot is that it answers the domain's questions better than the
model it started from, so the base model and the tuned model answer the *same* test prompts,
greedily (deterministic), and each set of answers is scored against the reference answers:
chrF (sacrebleu), ROUGE-L F1 (rouge-score), MiniLM cosine similarity (meaning, not wording),
distinct-1/2 (how repetitive the answers are) and the mean answer length in words.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from typing import Any

from training.tasks import distinct, render_chat


@dataclass
class ChatPrompt:
    """A conversation up to (not including) its last assistant turn, and that turn as reference."""

    messages: list[dict[str, str]]
    reference: str


def chat_prompts(rows: list[dict[str, Any]], limit: int | None) -> list[ChatPrompt]:
    """The chat records of a split that end with an assistant turn, in split order."""
    prompts = []
    for row in rows:
        messages = row.get("messages") or []
        if len(messages) >= 2 and messages[-1]["role"] == "assistant":
            context = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
            prompts.append(ChatPrompt(context, messages[-1]["content"]))
    return prompts if limit is None else prompts[:limit]


def context_budget(model: Any, max_new_tokens: int) -> tuple[int | None, int]:
    """(longest prompt, longest answer) in tokens so that both fit the model's context window;
    the answer keeps ``max_new_tokens`` unless that would take more than half the window."""
    window = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if not window:
        return None, max_new_tokens
    answer = max(1, min(max_new_tokens, window // 2))
    return window - answer, answer


def generate_answers(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], max_new_tokens: int, batch_size: int = 8
) -> list[str]:
    """Greedy answers, batched with left padding (a decoder-only model continues on the right);
    a prompt longer than the context window keeps its most recent tokens."""
    import torch

    max_prompt, max_answer = context_budget(model, max_new_tokens)
    config = copy.deepcopy(model.generation_config)
    config.do_sample, config.temperature, config.top_p, config.top_k = False, None, None, None
    config.max_new_tokens = max_answer
    config.pad_token_id = tokenizer.pad_token_id
    sides = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side = tokenizer.truncation_side = "left"
    answers: list[str] = []
    model.eval()
    try:
        for start in range(0, len(conversations), batch_size):
            texts = [
                render_chat(tokenizer, c, add_generation_prompt=True) for c in conversations[start : start + batch_size]
            ]
            inputs = tokenizer(
                texts,
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
                truncation=max_prompt is not None,
                max_length=max_prompt,
            ).to(model.device)
            with torch.inference_mode():
                output = model.generate(**inputs, generation_config=config)
            new = output[:, inputs["input_ids"].shape[1] :]
            answers += [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = sides
    return answers


def answer_scores(answers: list[str], references: list[str], embedder: Any) -> dict[str, float]:
    """Mean chrF, ROUGE-L F1 and MiniLM cosine against the references; distinct-1/2; mean length."""
    from rouge_score.rouge_scorer import RougeScorer
    from sacrebleu.metrics import CHRF

    if not answers:
        return {}
    chrf = CHRF()
    rouge = RougeScorer(["rougeL"], use_stemmer=True)
    pairs = list(zip(answers, references, strict=True))
    return {
        "chrf": round(statistics.fmean(chrf.sentence_score(a, [r]).score for a, r in pairs), 4),
        "rouge_l": round(statistics.fmean(rouge.score(r, a)["rougeL"].fmeasure for a, r in pairs), 4),
        "minilm_cosine": round(statistics.fmean(embedder.cosine(answers, references)), 4),
        "distinct_1": distinct(answers, 1),
        "distinct_2": distinct(answers, 2),
        "mean_answer_words": round(statistics.fmean(len(a.split()) for a in answers), 2),
    }
