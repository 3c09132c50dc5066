"""What a person reads: rich tables on the terminal (tables), the bundle's model card (model_card) and the
self-contained HTML report (html)."""
