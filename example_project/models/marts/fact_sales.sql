select
    order_id,
    customer_id,
    cast(ordered_at as date) as order_date,
    product,
    quantity,
    amount
from {{ ref('int_order_lines') }}
