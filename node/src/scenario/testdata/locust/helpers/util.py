# A helper module the test locustfile could import (never run).
