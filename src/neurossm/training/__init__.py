"""Training, evaluation and the results layout."""
