import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trans_bot.settings")
application = get_wsgi_application()

# Everything loaded so far (Django, the apps, their modules) lives as long as the process:
# out of the garbage collector's sight, its first full collection does not stall a request
# for tens of milliseconds scanning half a million objects that can never be freed.
gc.collect()
gc.freeze()
