"""A YAML file read as plain data, bounded: a one-line UserError for bad YAML, an alias bomb, or nesting too deep."""

from ruamel.yaml import YAML, YAMLError

from mnist_dnn.errors import QUOTE_LIMIT, UserError, shorten

MAX_YAML_NODES = 10_000  # params.yaml has ~100 nodes: anchors and aliases may repeat a value, not multiply it


def expanded_size(node, limit):
    """How many nodes the YAML ``node`` holds with every alias expanded, counted up to ``limit + 1`` at most."""
    pending, count = [node], 0
    while pending and count <= limit:
        node = pending.pop()
        count += 1
        if isinstance(node.value, list):  # a sequence's nodes, or a mapping's (key, value) pairs
            pending.extend(part for item in node.value for part in (item if isinstance(item, tuple) else (item,)))
    return count


def read_yaml(text, where):
    """The YAML ``text`` read from ``where``, as plain data, within MAX_YAML_NODES once its aliases are expanded; a
    one-line UserError otherwise."""
    yaml = YAML(typ="safe", pure=True)
    try:
        node = yaml.compose(text)
        if node is not None and expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise UserError(f"{where}: its aliases expand it to more than {MAX_YAML_NODES} YAML nodes")
        return yaml.load(text)
    except YAMLError as err:
        raise UserError(f"{where}: cannot read: {shorten(err, 2 * QUOTE_LIMIT)}") from None
    except RecursionError:
        raise UserError(f"{where}: cannot read: nested too deeply") from None
