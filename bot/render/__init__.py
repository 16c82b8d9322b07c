"""Pure renderers: a digest → the seed's markdown post, or JSON."""
