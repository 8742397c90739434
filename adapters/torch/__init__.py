"""adapters/torch"""
