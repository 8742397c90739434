"""portability/core"""
