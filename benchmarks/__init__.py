"""Benchmark task types, loaders, local metric modules and the fine-tune-and-score runner."""
