"""portability/reports"""
