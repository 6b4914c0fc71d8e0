"""Chains from config/chains/: steps of model calls and deterministic transforms, run as
LangChain Runnables whose every model call takes promptbus's own path."""

from pipeline.chains.build import State, build
from pipeline.chains.catalog import Chain, ChainCatalog
from pipeline.chains.chat_model import ChainGateway, PromptbusChatModel, using_gateway
from pipeline.chains.loader import load_directory, load_file
from pipeline.chains.spec import ChainVersion

__all__ = [
    "Chain",
    "ChainCatalog",
    "ChainGateway",
    "ChainVersion",
    "PromptbusChatModel",
    "State",
    "build",
    "load_directory",
    "load_file",
    "using_gateway",
]
