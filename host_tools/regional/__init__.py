"""Regional service: answers sealed queries from the SLTD list."""
