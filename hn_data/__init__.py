"""hn_data: the data engine (candidate-set synthesis) and dataset writers/converters."""
