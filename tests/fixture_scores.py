"""What `make grade` gives the five honest learners of tests/fixtures/submissions/ (the warm-up exercise).

Shared by tests/test_grading.py (the course's grader) and tests/test_nbgrader.py (nbgrader on the same
submissions). Per learner: (points, max_points, ex00-count-tokens column, ex00-cheaper-prompt column),
as strings, the way the gradebook CSV has them.
"""

HONEST = {
    "alice": ("3", "3", "2", "1"),  # everything right
    "bob": ("2", "3", "2", "0"),  # exercise 2 left undone
    "carol": ("1", "3", "0", "1"),  # syntax error in exercise 1
    "dave": ("0", "3", "0", "0"),  # infinite loop in exercise 1, interrupted
    "erin": ("2", "3", "2", "not run"),  # the kernel dies before exercise 2
}
GRADER_IDS = ("ex00-count-tokens", "ex00-cheaper-prompt")
