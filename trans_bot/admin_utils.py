from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """History that must not change: no add, change or delete, even for superusers."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
