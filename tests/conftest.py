"""Puts tests/ on sys.path (pytest adds a conftest's folder), so that helpers shared by the test
folders, such as c_program.py, import by name from any of them."""
