"""The results: tables, the stages' outputs, Markdown, the report with its charts and graphs, the docs' copies."""
