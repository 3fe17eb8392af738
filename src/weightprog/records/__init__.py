"""Typed run records: what each command writes to disk (report.json, results.json, comparison.json,
<device>.fit.json, a sweep's jobs/<id>.json, advice.json, flipmap.json), as frozen dataclass trees.

One module per record kind. Each record has a format version, `to_json()` (the file's object,
exactly as the command writes it) and `from_json()` (which also reads what earlier versions wrote:
every old-key migration of that file is in its `from_json`, nowhere else). Pages, printed summaries
and sweep summaries read records, never the raw dicts. advice.json and flipmap.json are read through
`jsonfile.Fields`, whose errors name the file and the bad field's JSON pointer.
"""
