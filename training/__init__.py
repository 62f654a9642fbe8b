"""Offline pipeline: ingest prices, compute features in Spark, train and export models."""
