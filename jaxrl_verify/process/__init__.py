"""Process supervision: steps, Monte-Carlo step labels, reward models over steps, and search."""
