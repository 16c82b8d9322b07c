"""Pure domain: models, arXiv ids, taxonomy, ranking and selection. No I/O here."""
