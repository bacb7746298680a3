"""The write side: every multi-table change inside one `database.atomic()`.

Services raise the error tree (`cloutsy.errors`), never HTTP errors; unique and
foreign-key violations become Conflict/Invalid through `cloutsy.integrity`.
"""
