"""portability/faults"""
