"""Converts the embedded model's GGUF to a Hugging Face folder vLLM can serve. Runs in the vLLM
environment (transformers, torch), never the project's: python convert_gguf.py GGUF_FILE OUT_DIR"""

import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig


def main(gguf_file: Path, out_dir: Path) -> None:
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # Dequantized: a GGUF-quantized model cannot be saved (transformers says it is not serializable).
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=str(gguf_file), dequantize=True),
    )
    partial = out_dir.with_suffix(".partial")
    tokenizer.save_pretrained(partial)
    model.save_pretrained(partial)
    partial.rename(out_dir)  # a folder that exists is complete


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
