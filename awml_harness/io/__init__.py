"""Small, dependency-free readers shared by projects (safe pickles, PNG)."""
