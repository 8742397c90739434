"""portability/training"""
