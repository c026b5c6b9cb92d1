-- Ephemeral: inlined into the marts that use it, never built on its own.
select
    order_id,
    customer_id,
    ordered_at,
    product,
    quantity,
    unit_price,
    {{ line_amount('quantity', 'unit_price') }} as amount
from {{ ref('stg_orders') }}
