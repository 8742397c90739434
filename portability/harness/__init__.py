"""portability/harness"""
