"""Application services: where the Hailuo client, the storage and the front ends meet."""
