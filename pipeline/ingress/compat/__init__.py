"""The compatible APIs: OpenAI's and Gemini's wire formats, translated to the one request.

Each API has its own package: its request translated into a `GenerateRequest`, its
answers, streams and errors rendered back. Everything between runs on the one path
(`pipeline.ingress.serve`), so a request means the same whichever API it came through.
"""
