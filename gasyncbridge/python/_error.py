# SPDX-License-Identifier: LGPL-2.1-or-later
"""gasyncbridge.GLibError: run by gab-error.c as "gasyncbridge._error", in
Python because a plain Python exception class (picklable, with its own
__init__ and __str__) is simplest written as one.
"""


class GLibError(Exception):
    '''A GError raised in Python: .domain (str), .code (int), .message (str).'''

    def __init__(self, message='', domain=None, code=0):
        super().__init__(message)
        self.message = message
        self.domain = domain
        self.code = code

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (type(self), (self.message, self.domain, self.code))


GLibError.__module__ = 'gasyncbridge'
