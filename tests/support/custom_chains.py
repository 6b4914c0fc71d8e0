"""Chains written in Python, as a user would write them, for the custom-chain tests."""

from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from pipeline.chains import PromptbusChatModel


def make_about() -> Runnable:
    """Tell what is known about a topic, in one model call."""
    prompt = ChatPromptTemplate.from_messages([("human", "Tell me about {topic}")])
    return prompt | PromptbusChatModel(model="flash")


def not_a_runnable() -> object:
    return "a string"
