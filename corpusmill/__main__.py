from corpusmill.cli import app

app(prog_name="corpusmill")
