"""Built-in domain plugins (registered through the `zoo.domains` entry-point group like any plugin)."""
