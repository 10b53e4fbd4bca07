"""Inventory feed files: detection, parsing, column mapping and normalisation.

The entry point is ``syncengine.feeds.reader.open_feed``.
"""
