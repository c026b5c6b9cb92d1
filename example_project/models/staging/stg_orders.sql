select
    cast(order_id as integer) as order_id,
    cast(customer_id as integer) as customer_id,
    cast(ordered_at as timestamp) as ordered_at,
    cast(product as varchar) as product,
    cast(quantity as integer) as quantity,
    cast(unit_price as decimal(10, 2)) as unit_price
from {{ source('raw', 'orders') }}
