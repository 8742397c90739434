"""adapters/safetensors"""
